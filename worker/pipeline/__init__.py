"""The pose pipeline that the worker's subprocess runs (and `pose-service run` runs standalone).

A pipeline is built by a *factory*: a zero-argument callable, named `module:function`, that loads
whatever is expensive (torch, model weights) once and returns a `Pipeline`. The warm child calls the
factory once and then serves many jobs with the same pipeline; see `worker/pipeline/contract.py`.

Grouped by responsibility, the way rtmlib separates runtime, model, solution and visualisation, so
that each layer can be read and tested without the ones above it:

* ``runtime/`` runs TFLite graphs as torch modules and knows nothing of poses;
* ``blazepose/`` is the models' pre- and post-processing around the runtime, and their weights;
* ``tracking/`` carries identities and smoothing across frames (numpy only);
* ``io/`` decodes the video, checks it, and writes the result document and the overlay;
* ``pose.py`` composes them (the factory ``worker.pipeline.pose:create``), with its job params in
  ``pose_params.py`` beside it, where ``params.schema_for`` finds a factory's schema by name.

``child.py`` (the child's entry point) and ``contract.py`` stay at the top: the worker starts the first
and every pipeline, including the test and benchmark ones, implements the second.
"""
