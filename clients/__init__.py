"""Everything that speaks TAXII to another node: the federation mirror (and the CERT/SOC tools)."""
