"""What every experiment shares: run directories, checkpoints, seeding, devices, frozen denoisers,
the training loop and result tables."""
