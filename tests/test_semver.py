from dockyard_integrations.common.semver import SemVer, parse_semver


def test_release_and_prerelease_tags():
    assert parse_semver("v1.2.3") == SemVer("1", "2", "3")
    assert parse_semver("v1.2.3").release_tags() == ["1.2", "1"]
    pre = parse_semver("2.0.0-rc.1+build.7")
    assert (pre.version, pre.build, pre.release_tags()) == ("2.0.0-rc.1", "build.7", [])


def test_not_semver():
    for tag in ("release-1", "v1.2", "01.2.3", "1.2.3-", "latest"):
        assert parse_semver(tag) is None, tag
