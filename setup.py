"""Build the Cython extensions of the classifier package.

Every `classifier/**/*.pyx` is one extension module, named by its path
(`classifier/engine/_engine.pyx` is `classifier.engine._engine`). C lives in header-only files
beside the .pyx that includes it; the codes every room shares are `classifier/csrc/codes.h`
(declared for Cython in `classifier/_codes.pxd`). Compiler directives are set here, once:

- CLASSIFIER_DEBUG=1     bounds and wraparound checks on, -O0 -g (fuzzing, sanitizers)
- CLASSIFIER_SANITIZE=1  the debug build, plus AddressSanitizer and UndefinedBehaviorSanitizer
                         (-fsanitize=address,undefined; a UB report aborts). Python itself is
                         not instrumented, so the ASan runtime must be loaded first:
                         LD_PRELOAD="$(gcc -print-file-name=libasan.so) \
                                     $(gcc -print-file-name=libubsan.so)" \
                         ASAN_OPTIONS=detect_leaks=0
                         (`make test-sanitize` does it; leaks are off: CPython keeps objects
                         alive on purpose at exit)
- CLASSIFIER_ANNOTATE=1  write Cython's HTML annotation next to each .pyx
- CLASSIFIER_ONLY=_a,_b  build only these modules (a quick rebuild while working on one)
"""

import os
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

SANITIZE = os.environ.get("CLASSIFIER_SANITIZE") == "1"
DEBUG = os.environ.get("CLASSIFIER_DEBUG") == "1" or SANITIZE
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

SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
link_args: list[str] = []
if SANITIZE:
    compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", "-UNDEBUG", "-DCLASSIFIER_DEBUG=1"]
    compile_args += SANITIZERS
    link_args = SANITIZERS
elif DEBUG:
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
        extra_link_args=link_args,
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
