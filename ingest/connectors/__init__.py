"""Industrial protocol connectors (OPC-UA, Modbus TCP, Sparkplug B) feeding the ingest pipeline."""
