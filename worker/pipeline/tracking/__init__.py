"""Across frames: identities for the people the models find (``tracker``) and their smoothing
(``smoothing``). Pure numpy, so it is tested without any model.
"""
