"""Build the Cython extensions of the classifier package.

Every `classifier/**/*.pyx` is one extension module, named by its path
(`classifier/engine/_engine.pyx` is `classifier.engine._engine`). C lives in header-only files
beside the .pyx that includes it; the codes every room shares are `classifier/csrc/codes.h`
(declared for Cython in `classifier/_codes.pxd`). Compiler directives are set here, once:

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


def module_name(path: str) -> str:
    return os.path.splitext(path)[0].replace(os.sep, ".")


extensions = [
    Extension(
        name=module_name(path),
        sources=[path],
        include_dirs=[numpy.get_include(), "classifier/csrc", os.path.dirname(path)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
    for path in sorted(glob("classifier/**/*.pyx", recursive=True))
    if not ONLY or module_name(path).rsplit(".", 1)[-1] in ONLY
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["."],
        annotate=ANNOTATE,
        force=DEBUG,
    ),
)
