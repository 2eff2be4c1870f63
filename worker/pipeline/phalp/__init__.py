"""The 4D-Humans / PHALP backend: the operator's track.py run per job, its pickle parsed into result@1.

- ``config.py``      POSE_PHALP_DIR / POSE_PHALP_PYTHON / POSE_PHALP_OVERRIDES, and whether they are usable
- ``invocation.py``  the job's private directory, input.mp4, the exact command line, the process
- ``launch.py``      the trampoline that ties track.py's life to the pipeline child's
- ``results.py``     ``results/demo_input.pkl``: loaded with joblib, checked, frame by frame
- ``joints.py``      the 45 PHALP joints and their mapping onto the 33 BlazePose keypoints
- ``smpl.py``        mesh vertices from the SMPL parameters, with the operator's SMPL model
- ``pipeline.py``    the composition (the factory ``worker.pipeline.phalp.pipeline:create``)

No torch here: 4D-Humans runs in the operator's own interpreter. docs/phalp.md is the user's guide.
Kept import-free so that the worker can import ``config`` without OpenCV or numpy.
"""
