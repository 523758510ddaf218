"""Defaults of the public FlowRVS model that the command line shows while it builds its parser
(so nothing here imports torch).

TEXT_LEN: tokens a prompt's embedding is zero-padded to (the current release, 256).
TEXT_LENS: the lengths a converted checkpoint may have been trained with (64: older ones).
The box frames are resized into is :data:`flowrvs.io.frames.WORKING_BOX`.
"""

TEXT_LEN = 256
TEXT_LENS = (64, 256, 512)
