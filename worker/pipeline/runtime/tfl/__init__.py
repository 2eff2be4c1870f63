"""Internals of the TFLite -> torch converter; the public API is ``worker.pipeline.runtime.tflite_torch``.

``reader`` parses the flatbuffer, ``sparsity`` decodes sparse weights, ``convert`` builds the execution
plan and ``ops`` holds the torch module for each operator.
"""
