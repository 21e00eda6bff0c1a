"""sg-classifier: what would these security-group rules have done to this traffic?"""

from classifier.errors import ClassifierError, PcapError, PolicyError, Problem, UsageError

__version__ = "0.1.0"

__all__ = [
    "ClassifierError",
    "PcapError",
    "PolicyError",
    "Problem",
    "UsageError",
    "__version__",
]
