"""The Cool-chic frame model: latent grids, ARM entropy model, upsampling and synthesis."""
