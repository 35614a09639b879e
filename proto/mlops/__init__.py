"""The contract, imported as `mlops`: the `mlops.v1` stubs and what all parts share beside them."""
