"""The pose pipeline that the worker's subprocess runs (and `pose-service run` runs standalone).

A pipeline is built by a *factory*: a zero-argument callable, named `module:function`, that loads
whatever is expensive (torch, model weights) once and returns a `Pipeline`. The warm child calls the
factory once and then serves many jobs with the same pipeline; see `worker/pipeline/contract.py`.
"""
