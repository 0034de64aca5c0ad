"""The pinned Python packages the corpus reads: wheels fetched by name and version into a cache,
checked against their sha256 and read as zip files, never from the running environment.

Only pure-Python wheels (`py3-none-any`), so every platform downloads the same bytes, whatever
Python runs the builder and whatever it has installed. 77 wheels, about 38 MB, cached in
`$EMBEDDINGGEMMA_CACHE/corpus-sources/` (default `~/.cache/embeddinggemma/corpus-sources/`) and
downloaded once with `pip download --no-deps`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.fetch import default_cache_dir, sha256_file

SOURCES_DIR = "corpus-sources"

# Wheel file name -> its sha256 (PyPI's). The package versions the codebase was written with, plus
# networkx and sympy for code. Changing this list changes the corpus: bump build.FORMAT_VERSION.
PINNED_WHEELS = {
    "absl_py-2.5.1-py3-none-any.whl":
        "721200f2f0e9960f2ca9dc3a2a706b201f5f75d812c158f059cbbe29eeafbdb8",
    "aiofiles-25.1.0-py3-none-any.whl":
        "abe311e527c862958650f9438e859c1fa7568a141b22abcd015e120e86a85695",
    "annotated_doc-0.0.7-py3-none-any.whl":
        "6bc31bbbec6dfaaedc1676dbc11dbda96fe22a2b5c400e9ebad113fec44a9dc6",
    "annotated_types-0.8.0-py3-none-any.whl":
        "f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0",
    "anyio-4.16.0-py3-none-any.whl":
        "c66ae634e0b8228396b801741beb3294326d4b6102f7bba4041c0dfb58c29026",
    "attrs-26.1.0-py3-none-any.whl":
        "c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309",
    "bm25s-0.3.16-py3-none-any.whl":
        "65d973bd496de883ae525955379e3e7cf90a12c3d54ed175036315ae677512c9",
    "certifi-2026.10.19.post1-py3-none-any.whl":
        "1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2",
    "click-8.5.1-py3-none-any.whl":
        "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37",
    "cloudpickle-3.1.3-py3-none-any.whl":
        "1654f4f18e416447210a63c5c25a135d65a292156aa5fa519dfa4baf7726dddb",
    "cycler-0.12.1-py3-none-any.whl":
        "85cef7cff222d8644161529808465972e51340599459b8ac3ccbac5a854e0d30",
    "datasets-5.2.0-py3-none-any.whl":
        "4be9e2882caaf5db13eadc39e93f3da2a995187b99acebac1595bf6c58dfa927",
    "dill-0.4.1-py3-none-any.whl":
        "1e1ce33e978ae97fcfcff5638477032b801c46c7c65cf717f95fbc2248f79a9d",
    "docstring_parser-0.18.0-py3-none-any.whl":
        "b3fcbed555c47d8479be0796ef7e19c2670d428d72e96da63f3a40122860374b",
    "einops-0.8.2-py3-none-any.whl":
        "54058201ac7087911181bfec4af6091bb59380360f069276601256a76af08193",
    "etils-1.15.0-py3-none-any.whl":
        "b9e7f3d7ab980c564245cd54e2b928e6abcb0521d6042ad3fdb13eea725309f0",
    "filelock-4.3.1-py3-none-any.whl":
        "79e43df8e9fe509cd83a3899a7c186c8077cbbe4d200a1ed3705c2f3bb6bc487",
    "flax-0.12.8-py3-none-any.whl":
        "807931d369cbc716fc447801ab39cd6c3c2614d573387a2319a028675dd34fe5",
    "fsspec-2026.9.0-py3-none-any.whl":
        "8dd6e646e99ea382bd85f97a45e6b526a442d79423a7dc673f1e2756d05fcb5f",
    "googleapis_common_protos-1.76.0-py3-none-any.whl":
        "59e13344a9f3651aa201a03e2bee815a3bf43a4baf1f9ff8a9b62a840ce25fac",
    "h11-0.16.0-py3-none-any.whl":
        "63cf8bbe7522de3bf65932fda1d9c2772064ffb3dae62d55932da54b31cb6c86",
    "httpcore2-2.16.2-py3-none-any.whl":
        "16051ae2a42f776007543f32de9349a317b23d2cbb4e1456b4bac0e88b87419a",
    "httpx2-2.16.2-py3-none-any.whl":
        "f05c13aade4c45dbf1c9060647a1058f0acad62398fad96e741269edb33d46f5",
    "huggingface_hub-2.4.0-py3-none-any.whl":
        "42ecfd93ede47bdd333daebbf66a32d7bfe2e18752754fe4d2d4f98a0179d801",
    "humanize-4.17.0-py3-none-any.whl":
        "02d0899527760efe18011944f882df4970943b4cdff7b5a0ba7fed43a576ef98",
    "idna-3.20-py3-none-any.whl":
        "ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c",
    "immutabledict-4.3.1-py3-none-any.whl":
        "c9facdc0ff30fdb8e35bd16532026cac472a549e182c94fa201b51b25e4bf7bf",
    "iniconfig-2.3.1-py3-none-any.whl":
        "9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7",
    "jax-0.10.2-py3-none-any.whl":
        "724d73c4678d8b06f6a6ab4db1b8a2fea8cd4f1e2c2564f99601634ec7b8d1c6",
    "jinja2-3.1.6-py3-none-any.whl":
        "85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67",
    "joblib-1.6.0-py3-none-any.whl":
        "3dbbf9f6e4b592a2357b854608e980fe6390d131d7a82f011a377ef2ebef7aba",
    "markdown-3.11.3-py3-none-any.whl":
        "e1a31a112232504d753e5c01bb8c2de90d3f0ba986b063e10770cf7695b09e73",
    "markdown_it_py-4.3.0-py3-none-any.whl":
        "7aa1511a46c39138de78d9eba92ce47e63124d8003fc98b3a351909e04239efa",
    "mdurl-0.1.2-py3-none-any.whl":
        "84008a41e51615a49fc9966191ff91509e3c40b939176e643fd50a5c2196b8f8",
    "ml_collections-1.1.0-py3-none-any.whl":
        "23b6fa4772aac1ae745a96044b925a5746145a70734f087eaca6626e92c05cbc",
    "mpmath-1.3.0-py3-none-any.whl":
        "a0b2b9fe80bbcd81a6647ff13108738cfb482d481d826cc0e02f5b35e5c88d2c",
    "narwhals-2.29.0-py3-none-any.whl":
        "1c69b3dc30240f6e848c5a673cafc86affa44184ecce721e25b7194663ad10dc",
    "networkx-3.6.1-py3-none-any.whl":
        "d47fbf302e7d9cbbb9e2555a0d267983d2aa476bac30e90dfbe5669bd57f3762",
    "optax-0.2.8-py3-none-any.whl":
        "e3ca2d36c99daab1800ae9dbc0545034382d6bc780b24d969e1b0df65fa31cb4",
    "opt_einsum-3.4.0-py3-none-any.whl":
        "69bb92469f86a1565195ece4ac0323943e83477171b91d24c35afe028a90d7cd",
    "orbax_checkpoint-0.12.8-py3-none-any.whl":
        "6a42c005db85bf412ae39598a008c894070fd69ca94ee39e2cca02c7ccc28d1f",
    "packaging-26.4-py3-none-any.whl":
        "81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2",
    "pip-26.3-py3-none-any.whl":
        "f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13",
    "pluggy-1.7.0-py3-none-any.whl":
        "7dd7b0d8832ba3cb632c306926ded123429211b83641b35dc5c41ad2d34f9bec",
    "polars-2.1.0-py3-none-any.whl":
        "63c50ce3533f5a03d17c3a2a24f1d0e0c7eda98fbde4268a3cba900d34060e67",
    "portpicker-1.6.0-py3-none-any.whl":
        "b2787a41404cf7edbe29b07b9e0ed863b09f2665dcc01c1eb0c2261c1e7d0755",
    "prometheus_client-0.26.0-py3-none-any.whl":
        "fa93d06737aa02bacd05794768508bb97d2fbee28cb3bca04eaae92f0ca953d6",
    "pydantic-2.14.4-py3-none-any.whl":
        "653a2ad9f6d8858529c77c72717d0ea991d6c6837fe683246b2f4b2bbfc3fadc",
    "pygments-2.21.0-py3-none-any.whl":
        "2363c69b61c4a97c838da3b130dcd6468f4848992b21a82f2a63ec34377137d9",
    "pyparsing-3.3.3-py3-none-any.whl":
        "ece8c00a69cf01b45d0b1dedabb469c90d8caf996d4fda40f147627a122849a4",
    "pytest-9.2.0-py3-none-any.whl":
        "07acdcf88ec174f907dc01af70bf52d49b014bbab03faeeade31c96b18c2e588",
    "python_dateutil-4.0.0-py3-none-any.whl":
        "a5e246f79eb80475e691bf93862cead98decd8a498cf53ba0516fcdc0f50dc1c",
    "requests-2.34.2-py3-none-any.whl":
        "2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0",
    "rich-15.0.0-py3-none-any.whl":
        "33bd4ef74232fb73fe9279a257718407f169c09b78a87ad3d296f548e27de0bb",
    "sentence_transformers-6.2.0-py3-none-any.whl":
        "ffb51ccfef65427cfa61776d0eeeb257600b0099cf0c7533ae9a6856d31e4665",
    "setuptools-84.2.1-py3-none-any.whl":
        "ca140b45d5325a9478f880e351484f62fef15f336462e449ca0c03c873d589c2",
    "shellingham-1.5.4-py2.py3-none-any.whl":
        "7ecfff8f2fd72616f7481040475a65b2bf8af90a56c89140852d1120324e8686",
    "simple_parsing-0.1.9-py3-none-any.whl":
        "398c6b2c3d6ee3b865a6b8d7413999ee7b373de3c5a047f0b12b03b705d52e16",
    "six-1.17.0-py2.py3-none-any.whl":
        "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    "sympy-1.14.0-py3-none-any.whl":
        "e091cc3e99d2141a0ba2847328f5479b05d94a6635cb96148ccb3f34671bd8f5",
    "tensorboard-2.21.0-py3-none-any.whl":
        "7279316dcb6bd5bc391d623dea841531299cde1887310e8133bc34a996d32255",
    "tensorboardx-2.6.5-py3-none-any.whl":
        "c10b891d00af306537cb8b58a039b2ba41571f0da06f433a41c4ca8d6abe1373",
    "tensorflow_datasets-4.9.10-py3-none-any.whl":
        "7ec065f0a628e28152b487ba9cbe72fa36d3854705d9f3abd04c6cf5d7a91527",
    "tensorflow_metadata-1.21.0-py3-none-any.whl":
        "0520806bf3bdd9157333203a3aa0e8afde2a97cc619f15ba622603dc6c898d1f",
    "termcolor-3.3.0-py3-none-any.whl":
        "cf642efadaf0a8ebbbf4bc7a31cec2f9b5f21a9f726f4ccbb08192c9c26f43a5",
    "threadpoolctl-3.8.0-py3-none-any.whl":
        "f1b49c82704d50f13ffae019c727b0fa4f6791a58f48f06a09c45face1be66da",
    "toml-0.10.2-py2.py3-none-any.whl":
        "806143ae5bfb6a3c6e736a764057db0e6a0e05e338b5630894a5f779cabb4f9b",
    "tqdm-4.70.1-py3-none-any.whl":
        "c293e525e6fef9c20e8728fd4612df02a0aa31bb5fe91ecd93e123b1b7bffa73",
    "treescope-0.1.10-py3-none-any.whl":
        "dde52f5314f4c29d22157a6fe4d3bd103f9cae02791c9e672eefa32c9aa1da51",
    "truststore-0.10.5-py3-none-any.whl":
        "9aaaedaefaf06d8b206278cf8b5012bc897f485a874503501e12d776df78951c",
    "typer-0.29.2-py3-none-any.whl":
        "f30731f8ca758368b836b3714872e58e395cef8fcaff918c853b1969ed5274e7",
    "typing_extensions-4.16.0-py3-none-any.whl":
        "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8",
    "typing_inspection-0.4.5-py3-none-any.whl":
        "bc210535442b39e1bf2805e0c7a17dfd6a4ace760c84c7f7d16245d23a6b1c39",
    "tzdata-2026.6-py2.py3-none-any.whl":
        "0a10eec6e13ef16b627fabed9a5f2ba61a62b1c67f327305f4e7e412a70b4aec",
    "urllib3-2.8.0-py3-none-any.whl":
        "0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3",
    "werkzeug-3.1.9-py3-none-any.whl":
        "6392e50c78460ba618e5b21f08a71f59c99ce99cdc6cf6e3dd7e6ccca8754fab",
    "zipp-4.1.2-py3-none-any.whl":
        "b30cb6cd253122169c47de245ca24a86bac2a5d3802ba15bf7ba6414eb9e144d",
}


class SourceError(RuntimeError):
    """A pinned wheel could not be downloaded or does not hold the bytes it was pinned with."""


@dataclasses.dataclass(frozen=True)
class Wheel:
    """A wheel file on disk and what it was pinned as."""

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        """The distribution name as the file spells it (`orbax_checkpoint`)."""
        return self.path.name.split("-")[0]

    @property
    def version(self) -> str:
        return self.path.name.split("-")[1]

    def provenance(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "file": self.path.name, "sha256": self.sha256}


def default_sources_dir() -> Path:
    """`corpus-sources/` in the cache directory (`$EMBEDDINGGEMMA_CACHE` or ~/.cache/embeddinggemma)."""
    return default_cache_dir() / SOURCES_DIR


def _download(filenames: Sequence[str], cache_dir: Path) -> None:
    """Downloads the wheels named by `filenames` into `cache_dir`, each moved in whole."""
    requirements = ["==".join(name.split("-")[:2]) for name in filenames]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        # Pure-Python wheels for any interpreter: the same file whatever runs this.
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-deps", "--ignore-requires-python", "--only-binary=:all:", "--platform", "any",
                   "--implementation", "py", "--abi", "none", "--dest", tmp, *requirements]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SourceError(f"Downloading the corpus sources into {cache_dir} failed "
                              f"({' '.join(requirements)}):\n{result.stderr[-2000:]}")
        for name in filenames:
            if not (Path(tmp) / name).is_file():
                got = sorted(p.name for p in Path(tmp).iterdir())
                raise SourceError(f"pip downloaded {got}, not the pinned wheel {name}.")
            os.replace(Path(tmp) / name, cache_dir / name)


def fetch_wheels(pins: dict[str, str] | None = None, cache_dir: str | Path | None = None) -> list[Wheel]:
    """The pinned wheels (default PINNED_WHEELS), sorted by file name, downloaded when missing.

    Raises:
      SourceError when a download fails or a wheel's sha256 is not the pinned one.
    """
    pins = PINNED_WHEELS if pins is None else pins
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_sources_dir()
    missing = [name for name in sorted(pins) if not (cache_dir / name).is_file()]
    if missing:
        _download(missing, cache_dir)
    wheels = []
    for name in sorted(pins):
        got = sha256_file(cache_dir / name)
        if got != pins[name]:
            raise SourceError(f"{cache_dir / name} has sha256 {got}, not the pinned {pins[name]}; "
                              f"remove the file to download it again.")
        wheels.append(Wheel(cache_dir / name, got))
    return wheels

