"""Tests in headless Chromium (Debian's package, driven by Playwright)."""
