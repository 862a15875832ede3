from bundlekit.errors import BadSignature, BundleError, CorruptBundle, TruncatedBundle


def test_message_names_the_file_and_the_problem():
    err = TruncatedBundle("the file ends early (half-copied?)", path="usb/site-a-00000001.bundle")
    assert str(err) == "usb/site-a-00000001.bundle: the file ends early (half-copied?)"


def test_hierarchy_lets_callers_catch_by_class():
    assert issubclass(TruncatedBundle, CorruptBundle)
    assert issubclass(BadSignature, CorruptBundle)
    assert issubclass(CorruptBundle, BundleError)


def test_with_path_fills_in_only_once():
    err = CorruptBundle("bad digest").with_path("a.bundle").with_path("b.bundle")
    assert err.path == "a.bundle"
