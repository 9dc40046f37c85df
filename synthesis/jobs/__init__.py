"""The job layer: what happens to a request between the web edges and the engines.

submit.py (requests become jobs), pipeline.py (a claimed job runs), lifecycle.py (a job queued again or failed,
tasks sent), workers.py and cluster.py (the processes that run jobs, and how they stop), recovery.py (the
sweep), breaker.py (engine faults), selectors.py (who may see what), voices.py, generate.py (the Python API),
control.py, artifacts.py, hooks.py. It imports models, engines and media, never the web edges above it.
"""
