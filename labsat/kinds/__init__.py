"""The system kinds labsat ships, each registered in the ``labsat.systems`` entry-point group.

One module per physical system (:mod:`labsat.kinds.mrr`, :mod:`labsat.kinds.mzi`, :mod:`labsat.kinds.d2nn`),
each assembling its :class:`~labsat.systems.kind.Kind` from the spec, System, calibration, training,
evaluation and simulator parts that live with their layers. A lab's own kind is the same: one package, one
entry point.
"""
