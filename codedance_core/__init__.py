"""CodeDance: a vision-language model that answers visual questions by writing and running Python.

`codedance_core` is the pure library of the pipeline. It never imports Prefect, so a GPU worker
can import it with nothing but the training extras installed.
"""

__version__ = "0.1.0"
