"""Voice: voice activity detection, speech-to-text, text-to-speech, audio frames.

Every model here runs off the event loop (worker threads; the native libraries
release the GIL) with bounded concurrency.
"""
