"""Sweeps: a grid of training and evaluation runs declared in YAML, run on a process pool or on Ray.

``spec`` declares the grid, ``grid`` expands it into cells, ``cell`` runs one, ``store`` keeps finished
cells so a killed sweep continues, ``engines`` runs the cells, ``dataset`` turns them into an xarray
Dataset (NetCDF, CSV) and ``show`` prints and plots it.
"""
