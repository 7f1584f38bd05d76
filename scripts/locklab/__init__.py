"""locklab's host tools: the code behind the commands in scripts/ (run-qemu, report, bench,
test-matrix, test-console, lava/make-job, lava/test-lava), one subject per module.

The commands are thin entry points that put scripts/ on sys.path and call a module's main().
"""
