"""The bench file's ``system:`` sections of labsat's own system kinds, one module per kind.

The bench-file schema (:mod:`labsat.benchfile`) knows no kind: it validates ``system:`` with the model the
kind registered for ``type`` supplies (:attr:`labsat.systems.kind.SystemKind.spec`). The models live here,
below the Systems, because the simulators build their chips from them too; like the schema, they load
without torch.
"""
