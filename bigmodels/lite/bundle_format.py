"""What a bundle is: its format name and version, its file names, its tasks, and its size caps.

Shared by the schema check (``bigmodels.lite.metadata``), the reader that verifies each file
(``bigmodels.lite.verify``) and the writer (``bigmodels.convert.bundle``).
"""

import re

BUNDLE_FORMAT = "bigmodels-bundle"
BUNDLE_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
TASKS = ("image_classification", "text_classification", "image_generation")
CLASSIFIER_TASKS = ("image_classification", "text_classification")

# Size caps, checked before anything is read or decompressed. Real bundles are far below them:
# metadata.json is a few KB, a bundled model a few hundred KB to tens of MB, a bundle 2 to 5 files.
MAX_METADATA_BYTES = 1 << 20  # 1 MiB for metadata.json
MAX_MEMBER_BYTES = 256 << 20  # 256 MiB for any one file (a .zip member: its expanded size)
MAX_BUNDLE_BYTES = 512 << 20  # 512 MiB for all files together (a .zip: all members, expanded)
MAX_MEMBERS = 64  # files listed in metadata.json, or members (folders included) of a .zip
MAX_ZIP_DIRECTORY_BYTES = 1 << 20  # a .zip's central directory, read before the members are counted

# A file the runtime opens is named by a bare file name: no folder, no "..", no absolute path.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
AGAIN = "export the bundle again"
