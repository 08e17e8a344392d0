"""The job pages, one module per page (or pair of pages): each calls `pages.route()` at import
time, and `pages.install()` imports every module here, so adding a page is adding a module.
Views read and act through `store/`, as the CLI does; they must not talk to Redis directly.
"""
