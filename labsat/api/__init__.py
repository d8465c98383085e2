"""The REST service: a FastAPI app over :class:`~labsat.jobs.engine.JobEngine`.

- :mod:`labsat.api.app` — the app factory (``create_app``) and error mapping;
- :mod:`labsat.api.auth` — bearer tokens with scopes ``read`` < ``operate`` < ``admin``;
- :mod:`labsat.api.schemas` — request and response models (pydantic, importable without FastAPI);
- :mod:`labsat.api.routes` — benches, jobs, calibrations and models, artifacts.

The API holds no physics and touches no hardware: every request becomes an engine call.
"""
