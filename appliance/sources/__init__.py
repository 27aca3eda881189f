"""Frame sources: camera, video file, still image and the bundled demo, behind one interface."""
