"""A small TAP producer for the tests/deploy scripts (meson protocol 'tap'):
each check is one `ok`/`not ok` line, failures show both values.

meson counts a TAP test with some `# SKIP` lines and no failure as passed,
so a check that needs a missing tool must not be skipped: `need` makes the
missing tool itself a failure. `skip` is for what is optional here (a file
outside the repository), not for tools the test command installs."""
import shutil
import sys


class Tap:
    def __init__(self):
        self.count = 0
        self.failed = 0

    def ok(self, cond, desc, diag=""):
        self.count += 1
        if not cond:
            self.failed += 1
        print(f"{'ok' if cond else 'not ok'} {self.count} - {desc}")
        if not cond and diag:
            for line in str(diag).splitlines():
                print(f"#   {line}")
        return cond

    def equal(self, got, want, desc):
        return self.ok(got == want, desc, f"got:  {got!r}\nwant: {want!r}")

    def need(self, tool, package):
        """A tool the checks cannot do without (tools/setup --tests installs
        it): `not ok` naming the package when it is not on PATH. Returns
        whether it is there."""
        found = shutil.which(tool) is not None
        self.ok(found, f"{tool} is installed",
                f"{tool} is not on PATH; install the Debian package {package} "
                "(tools/setup --tests does)")
        return found

    def skip(self, desc, why):
        self.count += 1
        print(f"ok {self.count} - {desc} # SKIP {why}")

    def bail(self, why):
        print(f"Bail out! {why}")
        sys.exit(1)

    def done(self):
        print(f"1..{self.count}")
        sys.exit(1 if self.failed else 0)
