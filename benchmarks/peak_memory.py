"""Peak resident memory of a block of work, shared by the benchmark scripts."""
import threading
import psutil


class PeakRSS:
    "Peak resident memory above the level at entry, sampled every 10 ms in a thread."
    def __enter__(self):
        self.proc, self.stop = psutil.Process(), threading.Event()
        self.base = self.peak = self.proc.memory_info().rss
        def _watch():
            while not self.stop.wait(0.01): self.peak = max(self.peak, self.proc.memory_info().rss)
        self.thread = threading.Thread(target=_watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self): return (self.peak - self.base) / 2 ** 20
