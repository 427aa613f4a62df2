"""numpy ↔ VTK for the 3D view, in one place: polydata from arrays, points updated in place, actors with
the look the window had under pyvista, a viridis lookup table, textures from images, screenshots as arrays.

The window draws with VTK directly (issue 27: pyvista + pyvistaqt + the matplotlib they import held
~125 MB of the GUI process). Only `vtkmodules` submodules are imported, never `import vtk` (it loads every
module). The look kept from pyvista 0.49's `add_mesh`: ambient 0, diffuse 1, specular power 100, flat
interpolation except smooth-shaded meshes (Phong, point normals from `vtkPolyDataNormals` without
splitting — what `smooth_shading=True` computed), scalars interpolated before mapping, default colour
light blue, point size 5, line width 1.
"""
from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingFreeType  # noqa: F401 - text rendering (colour bar, axes labels)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401 - the OpenGL implementations of vtkRenderingCore's classes
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import VTK_FLOAT, vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTexture, vtkWindowToImageFilter

#: pyvista's default mesh colour (its theme's 'lightblue'); scalars or a later SetColor usually cover it.
DEFAULT_COLOUR = (0.678, 0.847, 0.902)
#: matplotlib's viridis at 33 evenly spaced positions (every 8th of its 256 colours and the last);
#: linear interpolation between them is within 2/255 of the full table.
VIRIDIS = np.array([
    (0.267, 0.005, 0.329), (0.277, 0.050, 0.376), (0.282, 0.095, 0.417), (0.283, 0.136, 0.453),
    (0.279, 0.175, 0.483), (0.271, 0.214, 0.507), (0.259, 0.252, 0.525), (0.245, 0.288, 0.537),
    (0.230, 0.322, 0.546), (0.214, 0.356, 0.551), (0.199, 0.388, 0.555), (0.186, 0.419, 0.557),
    (0.173, 0.449, 0.558), (0.161, 0.479, 0.558), (0.149, 0.508, 0.557), (0.138, 0.537, 0.555),
    (0.128, 0.567, 0.551), (0.121, 0.596, 0.544), (0.121, 0.626, 0.533), (0.132, 0.655, 0.520),
    (0.158, 0.684, 0.502), (0.197, 0.712, 0.479), (0.246, 0.739, 0.452), (0.304, 0.765, 0.420),
    (0.369, 0.789, 0.383), (0.440, 0.811, 0.341), (0.516, 0.831, 0.294), (0.596, 0.849, 0.243),
    (0.678, 0.864, 0.190), (0.762, 0.876, 0.137), (0.846, 0.887, 0.100), (0.926, 0.897, 0.104),
    (0.993, 0.906, 0.144)])
VIRIDIS_AT = np.r_[0:256:8, 255] / 255.0


class Mesh(vtkPolyData):
    """`vtkPolyData` with its points as numpy: `mesh.points` reads them (a view), assigning updates them
    in place (`set_points`); `mesh.n_points`."""

    @property
    def points(self) -> np.ndarray:
        return vtk_to_numpy(self.GetPoints().GetData())

    @points.setter
    def points(self, value: np.ndarray) -> None:
        set_points(self, value)

    @property
    def n_points(self) -> int:
        return self.GetNumberOfPoints()


def _vtk_points(points: np.ndarray) -> vtkPoints:
    pts = vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(points, np.float32).reshape(-1, 3), deep=True))
    return pts


def _cells(ids: np.ndarray) -> vtkCellArray:
    """(C, k) point indices → a VTK cell array of C cells of k points each."""
    ids = np.asarray(ids, np.int64)
    conn = np.ascontiguousarray(ids.ravel())
    offsets = np.arange(0, conn.size + 1, ids.shape[1], dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(conn, deep=True))
    return cells


def polydata(points: np.ndarray, faces: np.ndarray | None = None, lines: np.ndarray | None = None,
             verts: bool = False) -> Mesh:
    """A mesh of `points` (P,3): polygons `faces` (F,k) (triangles, or one quad), line segments `lines`
    (L,2), and/or one vertex cell per point (`verts`: a point cloud drawn once per point)."""
    mesh = Mesh()
    mesh.SetPoints(_vtk_points(points))
    if faces is not None:
        mesh.SetPolys(_cells(faces))
    if lines is not None:
        mesh.SetLines(_cells(lines))
    if verts:
        mesh.SetVerts(_cells(np.arange(mesh.GetNumberOfPoints())[:, None]))
    return mesh


def set_points(mesh: vtkPolyData, points: np.ndarray) -> None:
    """New positions for `mesh`'s points: copied in place when the count is the same (the mapper and any
    normals filter update on the next render), else a new point array."""
    pts = np.asarray(points, np.float32).reshape(-1, 3)
    current = mesh.GetPoints()
    if current is not None and current.GetNumberOfPoints() == len(pts) and current.GetDataType() == VTK_FLOAT:
        data = current.GetData()
        vtk_to_numpy(data)[:] = pts
        data.Modified()
        current.Modified()
    else:
        mesh.SetPoints(_vtk_points(pts))
    mesh.Modified()


def set_point_scalars(mesh: vtkPolyData, values: np.ndarray, name: str = "scalars") -> None:
    """Per-point scalars (P,) or colours (P,3) uint8 as `mesh`'s active point scalars."""
    array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
    array.SetName(name)
    mesh.GetPointData().SetScalars(array)
    mesh.Modified()


def set_cell_colours(mesh: vtkPolyData, colours: np.ndarray) -> None:
    """One (3,) uint8 colour per cell (drawn by a `mesh_actor(..., rgb=True)`: cell scalars win when the
    mesh has no point scalars)."""
    array = numpy_to_vtk(np.ascontiguousarray(colours, np.uint8), deep=True)
    array.SetName("rgb")
    mesh.GetCellData().SetScalars(array)
    mesh.Modified()


def set_texture_coordinates(mesh: vtkPolyData, st: np.ndarray) -> None:
    array = numpy_to_vtk(np.ascontiguousarray(st, np.float32), deep=True)
    array.SetName("Texture Coordinates")
    mesh.GetPointData().SetTCoords(array)


def smooth_normals(mesh: vtkPolyData) -> vtkPolyDataNormals:
    """Point normals for smooth shading, as pyvista's `smooth_shading=True` computed them (no cell normals,
    no splitting of sharp edges, consistent ordering, non-manifold traversal, no auto-orientation)."""
    normals = vtkPolyDataNormals()
    normals.SetInputData(mesh)
    normals.ComputePointNormalsOn()
    normals.ComputeCellNormalsOff()
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOff()
    normals.NonManifoldTraversalOn()
    return normals


def mesh_actor(mesh: vtkPolyData, color: tuple[float, float, float] | None = None, *, smooth: bool = False,
               specular: float = 0.0, opacity: float = 1.0, lighting: bool = True, point_size: float = 5.0,
               line_width: float = 1.0, spheres: bool = False, pickable: bool = True, rgb: bool = False,
               wireframe: bool = False) -> vtkActor:
    """An actor drawing `mesh`: one colour, or its point colours (`rgb`: (P,3) uint8 scalars); `smooth`
    shades with point normals (Phong) as pyvista did; `spheres` draws points as shaded spheres."""
    mapper = vtkPolyDataMapper()
    if smooth:
        normals = smooth_normals(mesh)
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.normals = normals   # the connection does not keep the filter alive; the mapper's wrapper does
    else:
        mapper.SetInputData(mesh)
    mapper.SetInterpolateScalarsBeforeMapping(True)
    mapper.SetScalarVisibility(rgb)
    if rgb and mesh.GetPointData().GetScalars() is not None:
        mapper.SetScalarModeToUsePointData()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*(DEFAULT_COLOUR if color is None else color))
    prop.SetAmbient(0.0)
    prop.SetDiffuse(1.0)
    prop.SetSpecular(specular)
    prop.SetSpecularPower(100.0)
    if smooth:
        prop.SetInterpolationToPhong()
    else:
        prop.SetInterpolationToFlat()
    prop.SetOpacity(opacity)
    prop.SetLighting(lighting)
    prop.SetPointSize(point_size)
    prop.SetLineWidth(line_width)
    prop.SetRenderPointsAsSpheres(spheres)
    if wireframe:
        prop.SetRepresentationToWireframe()
    actor.SetPickable(pickable)
    return actor


def viridis_lut(n: int = 256) -> vtkLookupTable:
    """matplotlib's viridis as a VTK lookup table of `n` colours (from `VIRIDIS`, no matplotlib)."""
    x = np.linspace(0.0, 1.0, n)
    rgb = np.stack([np.interp(x, VIRIDIS_AT, VIRIDIS[:, k]) for k in range(3)], 1)
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(n)
    for i, (r, g, b) in enumerate(rgb):
        lut.SetTableValue(i, r, g, b, 1.0)
    lut.Build()
    return lut


def map_scalars(actor: vtkActor, lut: vtkLookupTable, value_range: tuple[float, float]) -> None:
    """Colour `actor` by its mesh's point scalars through `lut` over `value_range`."""
    mapper = actor.GetMapper()
    mapper.SetLookupTable(lut)
    mapper.SetScalarModeToUsePointData()
    mapper.SetColorModeToMapScalars()
    mapper.SetUseLookupTableScalarRange(False)
    mapper.SetScalarRange(*value_range)
    mapper.SetScalarVisibility(True)


def texture(image: np.ndarray, interpolate: bool = True) -> vtkTexture:
    """An (H,W,3|4) uint8 image as a VTK texture: texture coordinate (0, 0) is its bottom-left pixel."""
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    grid = vtkImageData()
    grid.SetDimensions(w, h, 1)
    # VTK's image rows go bottom-up, x fastest: flip the rows, then C order is VTK's point order.
    scalars = numpy_to_vtk(np.ascontiguousarray(image[::-1]).reshape(-1, channels), deep=True)
    scalars.SetName("Image")
    grid.GetPointData().SetScalars(scalars)
    tex = vtkTexture()
    tex.SetInputData(grid)
    tex.SetInterpolate(interpolate)
    return tex


def screenshot(render_window) -> np.ndarray:
    """What `render_window` shows as an (H,W,3) uint8 array, top row first (pyvista's
    `screenshot(return_img=True)`: the last frame read back from the front buffer, no re-render)."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(render_window)
    grab.SetScale(1)
    grab.FixBoundaryOn()
    grab.ShouldRerenderOff()
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOn()
    grab.Modified()
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(pixels[::-1])
