"""Build the Cython extensions of the classifier package.

Every `classifier/*.pyx` is one extension module; C helpers live as header-only
files in `classifier/csrc/`. Compiler directives are set here, once:

- CLASSIFIER_DEBUG=1     bounds and wraparound checks on, -O0 -g (fuzzing, sanitizers)
- CLASSIFIER_ANNOTATE=1  write Cython's HTML annotation next to each .pyx
- CLASSIFIER_ONLY=_a,_b  build only these modules (a quick rebuild while working on one)
"""

import os
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CLASSIFIER_DEBUG") == "1"
ANNOTATE = os.environ.get("CLASSIFIER_ANNOTATE") == "1"
ONLY = {name for name in os.environ.get("CLASSIFIER_ONLY", "").split(",") if name}

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

if DEBUG:
    compile_args = ["-O0", "-g", "-UNDEBUG", "-DCLASSIFIER_DEBUG=1"]
else:
    compile_args = ["-O3", "-DNDEBUG"]

extensions = [
    Extension(
        name="classifier." + os.path.splitext(os.path.basename(path))[0],
        sources=[path],
        include_dirs=[numpy.get_include(), "classifier/csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
    for path in sorted(glob("classifier/*.pyx"))
    if not ONLY or os.path.splitext(os.path.basename(path))[0] in ONLY
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        force=DEBUG,
    ),
)
