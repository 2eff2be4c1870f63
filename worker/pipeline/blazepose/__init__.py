"""The BlazePose models: the pinned weights, the detector (anchors, decoding, NMS), the landmark model
and the crops and regions between them. Pre- and post-processing around the runtime's graphs; no
tracking across frames and no I/O beyond the weights.
"""
