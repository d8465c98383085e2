"""Systems turn device calls into layer operations (``forward(x, controls) -> y``).

Which System a bench builds is its kind's (:mod:`labsat.systems.kind`), found by the bench file's
``system.type``.
"""
