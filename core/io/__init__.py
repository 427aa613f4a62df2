"""Reading user files (images, pose files) and writing results (meshes, npz) safely."""
