// Renders words with the Node.js speech synthesisers (npm: @echogarden/gnuspeech-wasm, sam-js) for
// spikeforge.data.speech_engines. Usage: node speech_node.mjs JOB.json, where JOB holds
// {modules, engine, voice, requests: [[word, pitch 0-99, speed words/min], ...], out}; writes out/<i>.wav.
import { readFileSync, writeFileSync } from 'fs'
import { join } from 'path'
import { pathToFileURL } from 'url'

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const load = (rel) => import(pathToFileURL(join(job.modules, rel)).href)

async function gnuspeech() {
  // GnuSpeech's articulatory model: voice = a voice file (male, female, large_child, small_child, baby);
  // pitch -> the control model's pitch_offset, +-8 semitones, speed -> tempo.
  const base = 'node_modules/@echogarden/gnuspeech-wasm'
  const { defaultTrmControlModelFileContent: model } = await load(`${base}/dist/utilities/DefaultTrmControlModel.js`)
  const { default: init } = await load(`${base}/wasm/gnuspeech.js`)
  const m = await init()
  const str = (s) => { const b = new TextEncoder().encode(s + '\0'), p = m._malloc(b.length); m.HEAPU8.set(b, p); return p }
  job.requests.forEach(([word, pitch, speed], i) => {
    const config = model.replace('voice_name = male', `voice_name = ${job.voice}`)
      .replace('tempo = 1.0', `tempo = ${(speed / 175).toFixed(3)}`)
      .replace('pitch_offset = -4.0', `pitch_offset = ${((pitch - 50) / 6).toFixed(2)}`)
      .replace('intonation_drift = 1', 'intonation_drift = 0').replace('random_intonation = 1', 'random_intonation = 0')
    m.FS.writeFile('/data/en/trm_control_model.txt', config)
    const args = [word, '/out.wav', '/data/en', '/params.txt'].map(str)
    m._GnuSpeech_synthesizeToFile(...args, false)
    args.forEach((p) => m._free(p))
    writeFileSync(join(job.out, `${i}.wav`), m.FS.readFile('/out.wav'))
  })
}

async function sam() {
  // SAM (Software Automatic Mouth): voice = "throat-mouth" formant settings; pitch 0-99 -> SAM pitch 90-30
  // (SAM's number is a period, F0 about 8000 / pitch Hz: 90-270 Hz), speed -> SAM speed 72 at 175 words/min (a duration).
  const { default: SamJs } = await load('node_modules/sam-js/dist/samjs.esm.min.js')
  const [throat, mouth] = job.voice.split('-').map(Number)
  job.requests.forEach(([word, pitch, speed], i) => {
    const voice = new SamJs({ throat, mouth, pitch: Math.round(90 - 0.6 * pitch), speed: Math.round(72 * 175 / speed) })
    writeFileSync(join(job.out, `${i}.wav`), voice.wav(word))
  })
}

await ({ gnuspeech, sam })[job.engine]()
