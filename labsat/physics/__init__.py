"""Differentiable device physics shared by the simulators (ground truth) and the twins (fitted).

The package itself imports nothing, so the torch-free geometry (:mod:`labsat.physics.optics`) can be
read by the bench-file schema without loading torch.
"""
