"""Where the named data sets come from: ordered mirrors and the published checksum of every file."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import DataError

MIRRORS_ENV = "XPNET_MIRRORS"

# Published checksums of the compressed files. MD5 as torchvision and the data sets' authors list them;
# SHA-256 of Fashion-MNIST as Keras lists them for its copy. A file is accepted if any digest matches.
MNIST_DIGESTS = {
    "train-images-idx3-ubyte.gz": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",),
    "train-labels-idx1-ubyte.gz": ("md5:d53e105ee54ea40749a09fcbcd1e9432",),
    "t10k-images-idx3-ubyte.gz": ("md5:9fb629c4189551a2d022fa330f9573f3",),
    "t10k-labels-idx1-ubyte.gz": ("md5:ec29112dd5afa0611ce80d1b7f02629c",),
}
FASHION_DIGESTS = {
    "train-images-idx3-ubyte.gz": (
        "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    "train-labels-idx1-ubyte.gz": (
        "md5:25c81989df183df01b3e8a0aad5dffbe",
        "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "md5:bef4ecab320f06d8554ea6380940ec79",
        "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "md5:bb300cfdad3c16e7a12a480ee83cd310",
        "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
}


@dataclass(frozen=True)
class Source:
    """Where a data set's files come from: base URLs tried in order, and the digests each file must match."""

    name: str
    mirrors: tuple[str, ...]
    digests: Mapping[str, tuple[str, ...]]  # file name -> ("md5:<hex>", "sha256:<hex>", ...)

    def with_mirrors(self, mirrors: Sequence[str]) -> Source:
        """This source with ``mirrors`` instead of its own; ``{dataset}`` in a URL becomes the data set name."""
        return Source(self.name, tuple(m.replace("{dataset}", self.name) for m in mirrors), self.digests)


# The original MNIST site (yann.lecun.com) has answered 403/404 for years: it is tried last, if at all.
SOURCES = {
    "mnist": Source(
        "mnist",
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's tutorial mirror
            "http://yann.lecun.com/exdb/mnist/",
        ),
        MNIST_DIGESTS,
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        (
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' mirror
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the authors' (torchvision's)
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        FASHION_DIGESTS,
    ),
}


def parse_mirrors(text: str | None) -> tuple[str, ...]:
    """Base URLs from ``XPNET_MIRRORS``-style text: separated by commas or whitespace, each ending in ``/``."""
    if not text:
        return ()
    urls = [u for u in text.replace(",", " ").split() if u]
    for u in urls:
        if urllib.parse.urlsplit(u).scheme not in ("http", "https", "file"):
            raise DataError(f"mirror {u!r} is not an http://, https:// or file:// URL: fix {MIRRORS_ENV} or --mirror")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def source_for(name: str, mirrors: Sequence[str] | None = None) -> Source:
    """The `Source` of data set ``name``; ``mirrors`` (else ``$XPNET_MIRRORS``) replaces its mirror list."""
    if name not in SOURCES:
        raise DataError(f"{name} has no download source: choose one of {', '.join(SOURCES)}")
    chosen = tuple(mirrors) if mirrors else parse_mirrors(os.environ.get(MIRRORS_ENV))
    return SOURCES[name].with_mirrors(chosen) if chosen else SOURCES[name]
