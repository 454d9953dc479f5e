"""Build of mpiray: every mpiray/_native/*.pyx becomes one C++ extension.

A .pyx names the C++ sources it needs in its own header, e.g.
    # distutils: language = c++
    # distutils: sources = src/cpp/store.cpp
so adding a native module never means editing this file.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

CXX_FLAGS = ["-std=c++20", "-O2", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]


def native_extensions():
    exts = []
    for pyx in sorted(glob.glob("mpiray/_native/*.pyx")):
        module = pyx[:-4].replace(os.sep, ".")
        exts.append(
            Extension(
                module,
                [pyx],
                include_dirs=["src/cpp"],
                # (rebuilt when a header or C++ source changes, not only the .pyx)
                depends=sorted(glob.glob("src/cpp/*.h") + glob.glob("src/cpp/*.cpp")),
                language="c++",
                extra_compile_args=CXX_FLAGS,
                libraries=["rt", "pthread"],
            )
        )
    return cythonize(exts, language_level=3, compiler_directives={"embedsignature": True})


setup(
    name="mpiray",
    version="0.1.0",
    description="Ray Core programs on one host and on MPI clusters, on a C++ shared-memory core",
    packages=find_packages(include=["mpiray", "mpiray.*"]),
    package_data={"mpiray._native": ["*.pxd", "*.pyi"]},
    ext_modules=native_extensions(),
    python_requires=">=3.9",
    install_requires=["numpy", "cloudpickle", "mpi4py", "posix_ipc"],
    extras_require={"mpi": ["mpich"], "test": ["pytest", "pytest-mpi"]},
)
