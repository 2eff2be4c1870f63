"""What goes in and out of the pipeline: decoding the video (``video_source``), the checks on its
container and frame size (``media_checks``, which the web applies at submit too), the result document
(``result_document``) and the optional skeleton overlay (``overlay``).

Kept import-free here: the web imports ``media_checks`` and must not pay for (or need) torch.
"""
