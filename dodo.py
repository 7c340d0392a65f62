# doit tasks of this envbuild project (`doit list`; or the `envbuild` command)
from envbuild.dodo import *  # noqa: F403
