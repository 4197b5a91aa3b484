"""Bridges to other tools' interfaces: NeuroBench (`integrations.neurobench`), and explicit data layouts (`integrations.layout`)."""
