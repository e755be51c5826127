"""One palette and one set of spacings for every screen of the app.

Screens never spell a colour or a margin: they ask for a tone (``Tone.ERROR``…) or use
``SPACING``/``MARGIN``, so a status looks the same in the Backup tab, History, the job log
and the tray, and forms line up from one dialog to the next.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from PyQt6.QtCore import QAbstractItemModel, QEvent, QObject, QPointF, Qt
from PyQt6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap, QPolygonF
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QBoxLayout,
    QFormLayout,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPlainTextEdit,
    QSizePolicy,
    QStackedWidget,
    QTableView,
    QTreeView,
    QWidget,
    QWizard,
    QWizardPage,
)

SPACING = 8
"""Between widgets of one group (form rows, buttons in a row)."""
MARGIN = 12
"""Around a page or a dialog's content."""
SECTION = 16
"""Between two groups of one page (a table and its buttons, two tables)."""
INDENT = 24
"""Options that belong to the checkbox or radio button above them."""


class Tone(enum.Enum):
    """What a colour says. Values are the colours (Material 800 shades, readable on white
    and on the default grey)."""

    OK = "#2e7d32"
    RUNNING = "#1565c0"
    WARNING = "#ef6c00"
    ERROR = "#c62828"
    MUTED = "#616161"
    DEBUG = "#757575"

    @property
    def colour(self) -> QColor:
        return QColor(self.value)


_BANNER = {
    False: ("#e3f2fd", "#90caf9"),  # information: light blue
    True: ("#fdecea", "#ef9a9a"),  # error: light red
}


def tone_style(tone: Tone | None) -> str:
    """A style sheet colouring a label's text (``""`` for the default colour)."""
    return f"color: {tone.value}" if tone is not None else ""


def set_tone(label: QLabel, tone: Tone | None) -> None:
    label.setStyleSheet(tone_style(tone))


def banner_style(*, error: bool) -> str:
    background, border = _BANNER[error]
    return (
        f"background: {background}; border: 1px solid {border}; "
        f"padding: {SPACING - 2}px; border-radius: 3px"
    )


def error_label(*, hidden: bool = True) -> QLabel:
    """A wrapped red label for a form's problem; hidden until it has something to say."""
    label = QLabel()
    set_tone(label, Tone.ERROR)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if hidden:
        label.hide()
    return label


def title_label(text: str, *, size: int = 14) -> QLabel:
    """A page heading ("Protected Items", "Job history")."""
    label = QLabel(text)
    font = label.font()
    font.setPointSize(size)
    font.setBold(True)
    label.setFont(font)
    return label


def tidy(layout: QLayout, *, margin: int | None = None) -> QLayout:
    """Apply the app's spacing to a layout (and ``margin`` around it, when given)."""
    if isinstance(layout, QFormLayout):
        layout.setHorizontalSpacing(SPACING * 2)
        layout.setVerticalSpacing(SPACING)
        layout.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    elif isinstance(layout, QGridLayout):
        layout.setHorizontalSpacing(SPACING)
        layout.setVerticalSpacing(SPACING)
    elif isinstance(layout, QBoxLayout):
        layout.setSpacing(SPACING)
    if margin is not None:
        layout.setContentsMargins(margin, margin, margin, margin)
    return layout


TABLE_STYLE = (
    f"QTableView::item {{ padding: 0px {SPACING}px; }} "
    f"QHeaderView::section {{ padding: 2px {SPACING}px; }}"
)
"""Room between a cell's text and the column's edges, in cells and in headers alike."""
TREE_STYLE = f"QTreeView::item {{ padding: {SPACING // 4}px 0px; }}"
"""Rows of trees (snapshots, files) as tall as table rows."""


_DOTS: dict[tuple[str, int], QIcon] = {}


def dot_icon(tone: Tone, size: int = 12) -> QIcon:
    """A filled circle in the tone's colour (drawn once per tone and size)."""
    key = (tone.value, size)
    icon = _DOTS.get(key)
    if icon is None:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(tone.colour)
        painter.setPen(Qt.PenStyle.NoPen)
        inset = max(1, size // 6)
        painter.drawEllipse(inset, inset, size - 2 * inset, size - 2 * inset)
        painter.end()
        icon = QIcon(pixmap)
        _DOTS[key] = icon
    return icon


def record_table(
    model: QAbstractItemModel, stretch: Sequence[int], *, single: bool = True
) -> QTableView:
    """A read-only table of records, one row per record: every column as wide as its
    content, the ``stretch`` columns sharing what is left (and eliding when the window is
    narrow), one line per row so rows keep one height, no horizontal scrolling."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(
        QAbstractItemView.SelectionMode.SingleSelection
        if single
        else QAbstractItemView.SelectionMode.ExtendedSelection
    )
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setAlternatingRowColors(True)
    table.setStyleSheet(TABLE_STYLE)
    table.setTabKeyNavigation(False)  # Tab leaves the table, as in every other widget
    rows = table.verticalHeader()
    assert rows is not None
    rows.setVisible(False)
    rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    rows.setDefaultSectionSize(table.fontMetrics().height() + SPACING + 2)
    header = table.horizontalHeader()
    assert header is not None
    header.setStretchLastSection(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setMinimumSectionSize(SPACING * 6)
    for column in stretch:
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
    return table


def filter_icon(size: int = 16) -> QIcon:
    """A funnel outline in the text colour, for Filter buttons."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(Tone.MUTED.colour, 1.5))
    s = float(size)
    funnel = QPolygonF(
        [
            QPointF(s * 0.1, s * 0.15),
            QPointF(s * 0.9, s * 0.15),
            QPointF(s * 0.58, s * 0.52),
            QPointF(s * 0.58, s * 0.88),
            QPointF(s * 0.42, s * 0.78),
            QPointF(s * 0.42, s * 0.52),
        ]
    )
    painter.drawPolygon(funnel)
    painter.end()
    return QIcon(pixmap)


def polish(window: QWidget) -> None:
    """Give every form and row of a window the app's spacing, and its top-level layout the
    app's margin. Forms right-align their labels so fields line up from dialog to dialog."""
    top = window.layout()
    for tree in window.findChildren(QTreeView):
        if not tree.styleSheet():
            tree.setStyleSheet(TREE_STYLE)
    for edit in window.findChildren(QPlainTextEdit):
        edit.setTabChangesFocus(True)  # Tab moves on, as in every other field
    # A wizard's own header and button rows are Qt's: only its pages are ours.
    owners: list[QWidget] = (
        list(window.findChildren(QWizardPage)) if isinstance(window, QWizard) else [window]
    )
    layouts = [layout for owner in owners for layout in owner.findChildren(QLayout)]
    for layout in layouts:
        if isinstance(layout, QFormLayout | QGridLayout):
            tidy(layout)
        elif isinstance(layout, QBoxLayout) and layout.spacing() < SPACING:
            layout.setSpacing(SPACING)
    if top is not None and not isinstance(window, QWizard):
        margins = top.contentsMargins()
        if max(margins.left(), margins.top(), margins.right(), margins.bottom()) > 0:
            top.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)


class _Polisher(QObject):
    """Polishes each window once, the first time it is shown."""

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if (
            event is not None
            and event.type() == QEvent.Type.Show
            and isinstance(watched, QWidget)
            and watched.isWindow()
            and not watched.property("comet_polished")
        ):
            watched.setProperty("comet_polished", True)
            polish(watched)
        return False


_POLISHER: list[_Polisher] = []


def install(app: QApplication) -> None:
    """Polish every window the app shows (idempotent)."""
    if not _POLISHER:
        _POLISHER.append(_Polisher(app))
        app.installEventFilter(_POLISHER[0])


def fit_stack(stack: QStackedWidget) -> None:
    """Size a stacked widget to its current page, not to its tallest one (no gap under a
    short page)."""

    def fit(current: int) -> None:
        for index in range(stack.count()):
            page = stack.widget(index)
            if page is None:
                continue
            policy = (
                QSizePolicy.Policy.Preferred if index == current else QSizePolicy.Policy.Ignored
            )
            page.setSizePolicy(policy, policy)
            page.adjustSize()
        stack.adjustSize()

    stack.currentChanged.connect(fit)
    fit(stack.currentIndex())


def align_forms(*forms: QFormLayout) -> None:
    """Give several forms one label column, so their fields start at the same x."""
    labels: list[QWidget] = []
    for form in forms:
        for row in range(form.rowCount()):
            item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            widget = item.widget() if item is not None else None
            if widget is not None:
                labels.append(widget)
    width = max((label.sizeHint().width() for label in labels), default=0)
    for label in labels:
        label.setMinimumWidth(width)


def focus_chain(container: QWidget) -> list[QWidget]:
    """The widgets inside ``container`` that Tab can reach, in Tab order."""
    found: list[QWidget] = []
    widget = container.nextInFocusChain()
    while widget is not None and widget is not container and len(found) < 10_000:
        if (
            container.isAncestorOf(widget)
            and widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            and widget.focusProxy() is None  # a spin box's inner line edit stands for it
        ):
            found.append(widget)
        widget = widget.nextInFocusChain()
    return found


def tab_first(widget: QWidget, container: QWidget) -> None:
    """Make ``widget`` the first stop of ``container``'s Tab order, keeping the rest in
    their order (for a widget added to a form after the form's own widgets)."""
    rest = [w for w in focus_chain(container) if w is not widget]
    previous = widget
    for following in rest:
        QWidget.setTabOrder(previous, following)
        previous = following
