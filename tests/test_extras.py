"""Optional packages are imported through one helper with one message when missing."""

from __future__ import annotations

import warnings

import pytest

from alphaswarm.data.base import FeedError
from alphaswarm.extras import import_extra


def test_a_missing_extra_names_the_package_and_the_pip_command():
    with pytest.raises(FeedError) as caught:
        import_extra(("alphaswarm_no_such_pkg.sub",), package="no-such-pkg", extra="nothing",
                     who="data.feed: 'nowhere'", error=FeedError)  # fmt: skip
    assert str(caught.value) == (
        "data.feed: 'nowhere' needs the no-such-pkg package: pip install 'alphaswarm[nothing]'"
    )


def test_an_installed_extra_returns_its_top_module_and_quiet_keeps_warnings_local():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = import_extra(("email.mime.text",), package="-", extra="-", who="-",
                              error=FeedError, quiet=True)  # fmt: skip
        assert module.__name__ == "email"
        assert warnings.filters[0][0] == "error"  # the caller's filters are back
