"""The pinned Python packages the corpus reads: wheels fetched by name and version into a cache,
checked against their sha256 and read as zip files, never from the running environment.

Only pure-Python wheels (`py3-none-any`), so every platform downloads the same bytes, whatever
Python runs the builder and whatever it has installed. 154 wheels, about 53 MB, cached in
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

# Wheel file name -> its sha256 (PyPI's): the pure-Python packages of the environment this codebase
# was written in, at their versions, and well-documented others (web, tooling, text, science) for
# more metadata pairs. Changing this list changes the corpus: bump build.FORMAT_VERSION.
PINNED_WHEELS = {
    "absl_py-2.5.1-py3-none-any.whl":
        "721200f2f0e9960f2ca9dc3a2a706b201f5f75d812c158f059cbbe29eeafbdb8",
    "aiofiles-25.1.0-py3-none-any.whl":
        "abe311e527c862958650f9438e859c1fa7568a141b22abcd015e120e86a85695",
    "alembic-1.20.1-py3-none-any.whl":
        "9970712cfb81ea26c8658d378aaa5b8f6ff9146e5bb111d70497c164016cf598",
    "annotated_doc-0.0.7-py3-none-any.whl":
        "6bc31bbbec6dfaaedc1676dbc11dbda96fe22a2b5c400e9ebad113fec44a9dc6",
    "annotated_types-0.8.0-py3-none-any.whl":
        "f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0",
    "anyio-4.16.0-py3-none-any.whl":
        "c66ae634e0b8228396b801741beb3294326d4b6102f7bba4041c0dfb58c29026",
    "arrow-1.4.0-py3-none-any.whl":
        "749f0769958ebdc79c173ff0b0670d59051a535fa26e8eba02953dc19eb43205",
    "astroid-4.3.4-py3-none-any.whl":
        "2bcd0d02648a443a4b818c952c3550091989daefac3c12d3b83b2289482e0818",
    "attrs-26.1.0-py3-none-any.whl":
        "c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309",
    "beautifulsoup4-4.15.0-py3-none-any.whl":
        "d6f88de62e1d4e38ecb1077eb9724cd0eff29d2a08ca16a401e9b9e93f117cf9",
    "bleach-6.4.0-py3-none-any.whl":
        "4b6b6a54fff2e69a3dde9d21cc6301220bee3c3cb792187d11403fd795031081",
    "blinker-1.9.0-py3-none-any.whl":
        "ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc",
    "bm25s-0.3.16-py3-none-any.whl":
        "65d973bd496de883ae525955379e3e7cf90a12c3d54ed175036315ae677512c9",
    "cachetools-8.0.2-py3-none-any.whl":
        "502bf3c17c6e35d78ccdaa70da8c7001b28634541f5cde0dee33c93bb252277d",
    "cattrs-26.2.1-py3-none-any.whl":
        "a12aaa3453dc8f633a815293179f08b7421ed18d2575c459c3c736f840beac24",
    "certifi-2026.10.19.post1-py3-none-any.whl":
        "1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2",
    "cfgv-3.5.0-py2.py3-none-any.whl":
        "a8dc6b26ad22ff227d2634a65cb388215ce6cc96bbcc5cfde7641ae87e8dacc0",
    "chardet-7.7.0-py3-none-any.whl":
        "11cf9b719ea3675a2a7d8a3071bbe4d7ea24b26bfe39a51588d515ddd05cacad",
    "chex-0.1.92-py3-none-any.whl":
        "f34989d9bff7954edfab09fba7757e3d62404da34577bff0d253599ec5b4f93d",
    "click-8.5.1-py3-none-any.whl":
        "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37",
    "cloudpickle-3.1.3-py3-none-any.whl":
        "1654f4f18e416447210a63c5c25a135d65a292156aa5fa519dfa4baf7726dddb",
    "colorama-0.4.6-py2.py3-none-any.whl":
        "4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6",
    "cycler-0.12.1-py3-none-any.whl":
        "85cef7cff222d8644161529808465972e51340599459b8ac3ccbac5a854e0d30",
    "dask-2026.8.0-py3-none-any.whl":
        "ccc0c83a189b0398602435189771d28dad7b5773b6089bb8dce14ae732dd782c",
    "datasets-5.2.0-py3-none-any.whl":
        "4be9e2882caaf5db13eadc39e93f3da2a995187b99acebac1595bf6c58dfa927",
    "decorator-5.3.1-py3-none-any.whl":
        "f47fe6fdbd2edd623ecfe36875d37aba411624e2670dd395dddae1358689bb3c",
    "dill-0.4.1-py3-none-any.whl":
        "1e1ce33e978ae97fcfcff5638477032b801c46c7c65cf717f95fbc2248f79a9d",
    "distlib-0.4.4-py2.py3-none-any.whl":
        "cf09d55b1e85a89576b036aeb71550bfd68320f3f21761ca329eadadad918638",
    "dm_haiku-0.0.17-py3-none-any.whl":
        "aa1394276adf59d695c910810ad90febb741503a83c32b022ce1162483904bbb",
    "docstring_parser-0.18.0-py3-none-any.whl":
        "b3fcbed555c47d8479be0796ef7e19c2670d428d72e96da63f3a40122860374b",
    "docutils-0.23-py3-none-any.whl":
        "25d013af9bf23bc1c7b2b093dff4208166c53a94786c9e447808335ef1185fea",
    "einops-0.8.2-py3-none-any.whl":
        "54058201ac7087911181bfec4af6091bb59380360f069276601256a76af08193",
    "etils-1.15.0-py3-none-any.whl":
        "b9e7f3d7ab980c564245cd54e2b928e6abcb0521d6042ad3fdb13eea725309f0",
    "fastapi-0.165.0-py3-none-any.whl":
        "896f48462042bb4f162147eb8fac7e858753dc1f486765709baf105d70e4fc5b",
    "filelock-4.3.1-py3-none-any.whl":
        "79e43df8e9fe509cd83a3899a7c186c8077cbbe4d200a1ed3705c2f3bb6bc487",
    "flake8-7.5.0-py2.py3-none-any.whl":
        "637ea1a443a78ed6ee461725cdf71ca93bc5cde0abf25436dbebdc3880b4e078",
    "flask-3.1.3-py3-none-any.whl":
        "f4bcbefc124291925f1a26446da31a5178f9483862233b23c0c96a20701f670c",
    "flax-0.12.8-py3-none-any.whl":
        "807931d369cbc716fc447801ab39cd6c3c2614d573387a2319a028675dd34fe5",
    "fsspec-2026.9.0-py3-none-any.whl":
        "8dd6e646e99ea382bd85f97a45e6b526a442d79423a7dc673f1e2756d05fcb5f",
    "google_auth-2.63.0-py3-none-any.whl":
        "cbc065325f67511946d1a66672e4f47e71ed162ef1abd2bb8404ceec407c86ba",
    "googleapis_common_protos-1.76.0-py3-none-any.whl":
        "59e13344a9f3651aa201a03e2bee815a3bf43a4baf1f9ff8a9b62a840ce25fac",
    "gunicorn-27.0.1-py3-none-any.whl":
        "378b26b9a38adcf4592f28828233c1716acc55e833ea06bf48719782efaa0d10",
    "h11-0.16.0-py3-none-any.whl":
        "63cf8bbe7522de3bf65932fda1d9c2772064ffb3dae62d55932da54b31cb6c86",
    "html5lib-1.1-py2.py3-none-any.whl":
        "0d78f8fde1c230e99fe37986a60526d7049ed4bf8a9fadbad5f00e22e58e041d",
    "httpcore2-2.16.2-py3-none-any.whl":
        "16051ae2a42f776007543f32de9349a317b23d2cbb4e1456b4bac0e88b87419a",
    "httpx-0.28.1-py3-none-any.whl":
        "d909fcccc110f8c7faf814ca82a9a4d816bc5a6dbfea25d6591d6985b8ba59ad",
    "httpx2-2.16.2-py3-none-any.whl":
        "f05c13aade4c45dbf1c9060647a1058f0acad62398fad96e741269edb33d46f5",
    "huggingface_hub-2.4.0-py3-none-any.whl":
        "42ecfd93ede47bdd333daebbf66a32d7bfe2e18752754fe4d2d4f98a0179d801",
    "humanize-4.17.0-py3-none-any.whl":
        "02d0899527760efe18011944f882df4970943b4cdff7b5a0ba7fed43a576ef98",
    "hypothesis-6.155.7-py3-none-any.whl":
        "9f634bdb1f9e9b8ab6ba09431cf2deedb750c96978125a6fb3c5a0f6c6db4131",
    "identify-2.6.20-py2.py3-none-any.whl":
        "6a16b69b93187244e0548cbfd25b3e4a6f9a7a2ad784625c3bec2b8d27b81aaa",
    "idna-3.20-py3-none-any.whl":
        "ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c",
    "immutabledict-4.3.1-py3-none-any.whl":
        "c9facdc0ff30fdb8e35bd16532026cac472a549e182c94fa201b51b25e4bf7bf",
    "iniconfig-2.3.1-py3-none-any.whl":
        "9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7",
    "isort-9.0.2-py3-none-any.whl":
        "6c29deeb39698a8717823b7f75b2ac58c5e8ab8dcf6cf31205a72a6617fb454e",
    "itsdangerous-2.2.0-py3-none-any.whl":
        "c6242fc49e35958c8b15141343aa660db5fc54d4f13a1db01a3f5891b98700ef",
    "jax-0.10.2-py3-none-any.whl":
        "724d73c4678d8b06f6a6ab4db1b8a2fea8cd4f1e2c2564f99601634ec7b8d1c6",
    "jinja2-3.1.6-py3-none-any.whl":
        "85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67",
    "jmespath-1.1.0-py3-none-any.whl":
        "a5663118de4908c91729bea0acadca56526eb2698e83de10cd116ae0f4e97c64",
    "joblib-1.6.0-py3-none-any.whl":
        "3dbbf9f6e4b592a2357b854608e980fe6390d131d7a82f011a377ef2ebef7aba",
    "jsonschema-4.26.0-py3-none-any.whl":
        "d489f15263b8d200f8387e64b4c3a75f06629559fb73deb8fdfb525f2dab50ce",
    "loguru-0.7.3-py3-none-any.whl":
        "31a33c10c8e1e10422bfd431aeb5d351c7cf7fa671e3c4df004162264b28220c",
    "mako-1.4.3-py3-none-any.whl":
        "723296007c870bfd6b3f0c3230dba7198096e5269297ebf5e4eff9e7ffa39d4f",
    "markdown-3.11.3-py3-none-any.whl":
        "e1a31a112232504d753e5c01bb8c2de90d3f0ba986b063e10770cf7695b09e73",
    "markdown_it_py-4.3.0-py3-none-any.whl":
        "7aa1511a46c39138de78d9eba92ce47e63124d8003fc98b3a351909e04239efa",
    "marshmallow-4.4.0-py3-none-any.whl":
        "03a882ff2eabb9a4e24b433c2949f359ef4d172a12fdc14cde10375fd55328b4",
    "mccabe-0.7.0-py2.py3-none-any.whl":
        "6c2d30ab6be0e4a46919781807b4f0d834ebdd6c6e3dca0bda5a15f863427b6e",
    "mdurl-0.1.2-py3-none-any.whl":
        "84008a41e51615a49fc9966191ff91509e3c40b939176e643fd50a5c2196b8f8",
    "ml_collections-1.1.0-py3-none-any.whl":
        "23b6fa4772aac1ae745a96044b925a5746145a70734f087eaca6626e92c05cbc",
    "more_itertools-11.2.1-py3-none-any.whl":
        "35a7377edd1dd6608dcb2cdf534ded55ea32d49448875ad042cd3f879fb1ded0",
    "mpmath-1.3.0-py3-none-any.whl":
        "a0b2b9fe80bbcd81a6647ff13108738cfb482d481d826cc0e02f5b35e5c88d2c",
    "narwhals-2.29.0-py3-none-any.whl":
        "1c69b3dc30240f6e848c5a673cafc86affa44184ecce721e25b7194663ad10dc",
    "networkx-3.6.1-py3-none-any.whl":
        "d47fbf302e7d9cbbb9e2555a0d267983d2aa476bac30e90dfbe5669bd57f3762",
    "nltk-3.10.4-py3-none-any.whl":
        "769ba5413f265b7d3e87cd163cc28efa01e29eeef8bb6080bc907949d9fcfb51",
    "nodeenv-1.12.0-py3-none-any.whl":
        "80644d65c10cc2be12e3e4b54b3367ff288c7ad24ae75c2dcc65454fc7449d4d",
    "nox-2026.10.20-py3-none-any.whl":
        "7aff12bb01471f5b087ada34cf0dbe452b02d840593f2e2afecc4bf6e6d6cd3f",
    "oauthlib-4.0.1-py3-none-any.whl":
        "498a298876e996301950a5b053d12c31628bb7b895db03666430c69ce182eb61",
    "opt_einsum-3.4.0-py3-none-any.whl":
        "69bb92469f86a1565195ece4ac0323943e83477171b91d24c35afe028a90d7cd",
    "optax-0.2.8-py3-none-any.whl":
        "e3ca2d36c99daab1800ae9dbc0545034382d6bc780b24d969e1b0df65fa31cb4",
    "orbax_checkpoint-0.12.8-py3-none-any.whl":
        "6a42c005db85bf412ae39598a008c894070fd69ca94ee39e2cca02c7ccc28d1f",
    "outcome-1.3.0.post0-py2.py3-none-any.whl":
        "e771c5ce06d1415e356078d3bdd68523f284b4ce5419828922b6871e65eda82b",
    "packaging-26.4-py3-none-any.whl":
        "81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2",
    "paramiko-5.1.0-py3-none-any.whl":
        "d9fe6d67a9d0bbf3eb85b051d26ab850b678c02d060f32915b944e5ca6d0d9e1",
    "parso-0.8.7-py2.py3-none-any.whl":
        "a8926eb2a1b915486941fdbd31e86a4baf88fe8c210f25f2f35ecec5b574ca1c",
    "pexpect-4.9.0-py2.py3-none-any.whl":
        "7236d1e080e4936be2dc3e326cec0af72acf9212a7e1d060210e70a47e253523",
    "pip-26.3-py3-none-any.whl":
        "f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13",
    "platformdirs-4.14.9-py3-none-any.whl":
        "d0d3a23e7ff282cfa94b77f5a22b81030dcb68ba0430f90c74f4bd8d090782ea",
    "pluggy-1.7.0-py3-none-any.whl":
        "7dd7b0d8832ba3cb632c306926ded123429211b83641b35dc5c41ad2d34f9bec",
    "polars-2.1.0-py3-none-any.whl":
        "63c50ce3533f5a03d17c3a2a24f1d0e0c7eda98fbde4268a3cba900d34060e67",
    "portpicker-1.6.0-py3-none-any.whl":
        "b2787a41404cf7edbe29b07b9e0ed863b09f2665dcc01c1eb0c2261c1e7d0755",
    "pre_commit-4.7.0-py2.py3-none-any.whl":
        "2e229038ad3656081b70c27913157e4b636ef306f643f024a8a8e3f0f7b2f877",
    "prometheus_client-0.26.0-py3-none-any.whl":
        "fa93d06737aa02bacd05794768508bb97d2fbee28cb3bca04eaae92f0ca953d6",
    "prompt_toolkit-3.0.53-py3-none-any.whl":
        "01c0891d7f9237d5e339f7d3e42cdae80b7534abb1c7c0e3352efba6231492f2",
    "ptyprocess-0.7.0-py2.py3-none-any.whl":
        "4b41f3967fce3af57cc7e94b888626c18bf37a083e3651ca8feeb66d492fef35",
    "pyasn1-0.6.5-py3-none-any.whl":
        "4017b0fce125096b8573b39c989fdb1a4b19cf761e683398184550fea0e66587",
    "pycodestyle-2.15.0-py2.py3-none-any.whl":
        "12fd2f73c7b8ee8845a0431111df8faf4c1a07d6e64e2ee7f0c74014dab14181",
    "pydantic-2.14.4-py3-none-any.whl":
        "653a2ad9f6d8858529c77c72717d0ea991d6c6837fe683246b2f4b2bbfc3fadc",
    "pyflakes-4.1.0-py2.py3-none-any.whl":
        "b2e05e6bac8e49b67be2a6ffa63422c60f7193fc72e8180255907b41ec997dc1",
    "pygments-2.21.0-py3-none-any.whl":
        "2363c69b61c4a97c838da3b130dcd6468f4848992b21a82f2a63ec34377137d9",
    "pyjwt-2.15.1-py3-none-any.whl":
        "42d59d631f7768a1028a64c7ff581a9bf7519804daf91fc5b6c56e30eec5e193",
    "pylint-4.1.4-py3-none-any.whl":
        "b39fcc762ec4a7fe385d01b8e170fd996847297cdc0e3850bdda1435c74cfd95",
    "pyparsing-3.3.3-py3-none-any.whl":
        "ece8c00a69cf01b45d0b1dedabb469c90d8caf996d4fda40f147627a122849a4",
    "pytest-9.2.0-py3-none-any.whl":
        "07acdcf88ec174f907dc01af70bf52d49b014bbab03faeeade31c96b18c2e588",
    "python_dateutil-4.0.0-py3-none-any.whl":
        "a5e246f79eb80475e691bf93862cead98decd8a498cf53ba0516fcdc0f50dc1c",
    "python_dotenv-1.2.4-py3-none-any.whl":
        "42269a8a5b3fd54ffa6f3d84b18abed50064717576b4ecf03dc4a55d8aa04fdc",
    "pytz-2026.6-py2.py3-none-any.whl":
        "7fed3fee8fd6bd4a2b7b75a8d56021d0624127bf69bd5691f115db929ac570b3",
    "referencing-0.37.0-py3-none-any.whl":
        "381329a9f99628c9069361716891d34ad94af76e461dcb0335825aecc7692231",
    "requests-2.34.2-py3-none-any.whl":
        "2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0",
    "requests_oauthlib-2.0.0-py2.py3-none-any.whl":
        "7dd8a5c40426b779b0868c404bdef9768deccf22749cde15852df527e6269b36",
    "rich-15.0.0-py3-none-any.whl":
        "33bd4ef74232fb73fe9279a257718407f169c09b78a87ad3d296f548e27de0bb",
    "rsa-4.9.1-py3-none-any.whl":
        "68635866661c6836b8d39430f97a996acbd61bfa49406748ea243539fe239762",
    "s3transfer-0.19.3-py3-none-any.whl":
        "24eb7535804306355e31c952a90022bf5b2f9d760f9a11062c7493a217c08553",
    "seaborn-0.13.2-py3-none-any.whl":
        "636f8336facf092165e27924f223d3c62ca560b1f2bb5dff7ab7fad265361987",
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
    "sniffio-1.3.1-py3-none-any.whl":
        "2f6da418d1f1e0fddd844478f41680e794e6051915791a034ff65e5f100525a2",
    "sortedcontainers-2.4.0-py2.py3-none-any.whl":
        "a163dcaede0f1c021485e957a39245190e74249897e2ae4b2aa38595db237ee0",
    "soupsieve-4.1.3-py3-none-any.whl":
        "7a390d1a57d1ab7bb228531e9b8a750a5ebf87db774e0ef6faeeac057d22a5bf",
    "sqlparse-0.6.1-py3-none-any.whl":
        "3be5a72d04c873d690d7c6dedd33d6fae2ef82759881ceec02fc2efd0cba564f",
    "starlette-1.10.0-py3-none-any.whl":
        "478c0ab3b4ced6e82719849c118fa406f0278a3499c1a898cd15cd31bdc38ce4",
    "structlog-26.1.0-py3-none-any.whl":
        "e081a26d6c373e6d201eca24eede26d8ffab07f88f477822e679183428d3d91e",
    "sympy-1.14.0-py3-none-any.whl":
        "e091cc3e99d2141a0ba2847328f5479b05d94a6635cb96148ccb3f34671bd8f5",
    "tabulate-0.10.0-py3-none-any.whl":
        "f0b0622e567335c8fabaaa659f1b33bcb6ddfe2e496071b743aa113f8774f2d3",
    "tenacity-9.2.1-py3-none-any.whl":
        "9e56f17539296baab7beabb08b92f6ee3d7be92d8be72d763360677c2ad6580e",
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
    "tomli-2.5.0-py3-none-any.whl":
        "32a7b79ac57a2e83670ce329ccf675798bc5a2094783a63676866b70503f2e2b",
    "tomlkit-0.15.2-py3-none-any.whl":
        "05562412163a3037b94497385fb7f9204c637bc605af7a48199e41cf2272f437",
    "toolz-1.2.0-py3-none-any.whl":
        "890f820b1cb8152785aaf9386d8707770110809035800985ca65cb24ce1120ef",
    "tox-4.67.15-py3-none-any.whl":
        "963219a3c5e4544408b19087b0c1a41932fc792d9ae0c40438aec4e88c48c676",
    "tqdm-4.70.1-py3-none-any.whl":
        "c293e525e6fef9c20e8728fd4612df02a0aa31bb5fe91ecd93e123b1b7bffa73",
    "traitlets-5.16.1-py3-none-any.whl":
        "f775618166caa0396c8e337099240f2bd3e5e917d203b2e6fbe21a58d3cb1f6b",
    "treescope-0.1.10-py3-none-any.whl":
        "dde52f5314f4c29d22157a6fe4d3bd103f9cae02791c9e672eefa32c9aa1da51",
    "trio-0.35.0-py3-none-any.whl":
        "9a062a029487c1bdbcc1b2543b729a0bde857ce478b1512c84f391f628e0c5c9",
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
    "uvicorn-0.54.0-py3-none-any.whl":
        "505bdb0f318731d45f1f712071fc781a8981f6847a31c902c9f5e652d4f67faf",
    "wcwidth-0.9.4-py3-none-any.whl":
        "901eace6d2dd25ebb917d0ce5db18e5c537e1504c905cf32f0d006c12098b05d",
    "websocket_client-1.9.2-py3-none-any.whl":
        "e1a673830a9c7bfa47b1cd3d5e4178f4c9651d80a4eab02c9c23a1c3ec6250ce",
    "werkzeug-3.1.9-py3-none-any.whl":
        "6392e50c78460ba618e5b21f08a71f59c99ce99cdc6cf6e3dd7e6ccca8754fab",
    "xarray-2026.9.0-py3-none-any.whl":
        "fe349fa871628b1a0a5217af3fe1283a2862d5485156e6eda354fffb81c3bb7c",
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

