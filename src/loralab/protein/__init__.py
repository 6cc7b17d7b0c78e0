"""Protein C-alpha distance maps: structures, data set, model, geometry, metrics, prediction."""
