"""Jobs: calibrations, training runs, evaluations and deployments queued per bench and run by one worker each.

- :mod:`labsat.jobs.model` — the job record, its states and the transitions between them;
- :mod:`labsat.jobs.journal` — jobs and their events in the store (survive a crash of the service);
- :mod:`labsat.jobs.kinds` — the registry of job kinds and the context a kind's function receives;
- :mod:`labsat.jobs.builtin` — the kinds labsat ships: ``calibrate``, ``train``, ``evaluate``, ``deploy``, and
  ``relock`` (published through the ``labsat.jobs`` entry point group, registered by ``labsat serve``);
- :mod:`labsat.jobs.worker` — the thread that alone owns one bench's hardware and runs its queue;
- :mod:`labsat.jobs.engine` — every bench of a service, opened, recovered and driven as one.

This package imports nothing heavy on its own, so a client can use the job model without torch.
"""
