"""The sequence model, its baselines, the training loop, evaluation and the model directory format."""
