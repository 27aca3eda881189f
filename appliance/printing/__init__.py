"""Printing the photo booth's photos through CUPS, with a status the screen can tell the shopper.

The API the core's photo desk uses (all of it; everything else in the package is its parts)::

    desk = PrintService.from_config(config, alerts, state_dir, on_outcome)   # None when [printing] enabled = false
    desk.submit(photo_id, image_path, campaign)   # never blocks; the print-size JPEG the compositor wrote
    desk.status(photo_id) -> PrintStatus | None  # .state: waiting | printing | printed | failed
                                                 # .screen: the line for the shopper, .reason: why (logs, events)
    desk.printer_ok -> bool                      # offer printing at all? (False: say "scan the QR")
    desk.forget(photo_id)                        # drop an ended status once shown
    desk.stop()

``on_outcome(photo_id, status)`` is called once per photo, on the desk's thread, when it ends
(``status.state`` printed or failed): the core turns it into the ``photo_printed`` /
``print_failed`` event (``status.reason`` is the failure's reason) with the campaign and session it
knows; it must be quick.  The desk raises and clears the alert ``printer`` (appliance.alerts) with
the printer's reason.  What the screen says: ``printing…``, ``printed: take your photo below``,
``printer needs attention: scan the QR`` and, past the day's limit, ``no more prints today: scan the
QR`` (the constants in ``service``).

Modules: ``layout`` (the page CUPS prints), ``printer`` (one CUPS queue through pycups), ``counter``
(pages per campaign per day), ``service`` (the worker).
"""

from appliance.printing.service import PrintService, PrintStatus

__all__ = ["PrintService", "PrintStatus"]
