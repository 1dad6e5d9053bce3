"""A small TAP producer for the tests/deploy scripts (meson protocol 'tap'):
each check is one `ok`/`not ok` line, failures show both values."""
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

    def skip(self, desc, why):
        self.count += 1
        print(f"ok {self.count} - {desc} # SKIP {why}")

    def bail(self, why):
        print(f"Bail out! {why}")
        sys.exit(1)

    def done(self):
        print(f"1..{self.count}")
        sys.exit(1 if self.failed else 0)
