"""Public sample databases (Chinook, TPC-DS) for the data-subject request tests: loaders,
inventories, independent SQL checks and pytest fixtures."""
