"""Settings for the Pulumi program's tests."""


def pytest_configure(config):
    # pulumi_gcp warns, when the program first touches some of its modules, about functions of
    # its own it has renamed; not ours to fix, and noise in every run.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_gcp.*")
