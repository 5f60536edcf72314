/* The dashboard page (see obs_dashboard.c). */
#ifndef OBS_OBS_DASHBOARD_H
#define OBS_OBS_DASHBOARD_H

extern const char obs_dashboard_html[];

#endif
