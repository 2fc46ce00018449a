from setuptools import find_packages, setup

setup(
    name="composed_ft",
    version="0.1.0",
    description="Composed fine-tuning: freezing pre-trained denoising autoencoders (Xie, Ma, Liang, ICML 2021), "
                "reproduced",
    packages=find_packages(include=["composed_ft", "composed_ft.*"]),
    # C sources built on first use: the sandbox's helper (g++), the U-Net's channels-last instance norm (cc)
    package_data={"composed_ft.code": ["sandbox_helper.c"], "composed_ft.imggen": ["nhwc_norm.c"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.2",
        "numpy",
        "pillow",
        "sentencepiece",
        "transformers",
        "tqdm",
        "matplotlib",
        "regex",
        "scipy",  # two-sample tests of the SansType generator against the release
    ],
    extras_require={"test": ["pytest", "ruff"]},  # scripts/test.sh lints with ruff before the tests
)
