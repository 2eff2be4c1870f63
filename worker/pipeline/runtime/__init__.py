"""The runtime: TFLite flatbuffers read and rebuilt as torch modules (``tflite_torch``, ``tfl/``).

Knows nothing of poses: any TFLite graph made of the supported operators runs here, on the CPU or a
GPU, which is what lets the models above it stay plain pre- and post-processing.
"""
