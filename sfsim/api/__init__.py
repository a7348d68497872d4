"""The simulator's HTTP API, one module per API family; `sfsim.app` routes to them."""
