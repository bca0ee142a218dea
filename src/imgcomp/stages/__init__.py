"""One module per DVC stage, each with one `main(params, ...)`; inputs and outputs on disk only."""
